"""The last module the services' fork server imports (edoc.launcher.PRELOAD): importing
it freezes what the server imported before it for the garbage collector, and ties the
server to the launcher. Imported only there: anywhere else it would freeze that
process's heap, and tie it to its parent, as a side effect.

Frozen, the objects are never written to by a collection in a service forked from the
server (edoc.web.settle_the_collector), and the memory pages that hold them stay shared
with the server and every other service instead of being copied into each (copy on
write).

Tied: the services end with the server (edoc.services.tie_to_launcher), but the server
did not end with a launcher killed outright. It ends when the pipe from the launcher
closes, and multiprocessing gives each process it forks the launcher's end of that pipe
(to start processes of its own): a service held it open. The kernel kills the server
when the thread of the launcher that started it ends (edoc.launcher.fork); one that
ended before it was asked closed the pipe, and the server ends on its own.
"""

import gc
import signal

from edoc import services

gc.collect()
gc.freeze()
services.signalled_when_parent_ends(signal.SIGKILL)  # it holds nothing to be put away
