"""The last module the services' fork server imports (edoc.launcher.PRELOAD): importing
it freezes what the server imported before it for the garbage collector. A collection in
a service forked from the server (edoc.web.settle_the_collector) then never writes to
those objects, and the memory pages that hold them stay shared with the server and every
other service instead of being copied into each (copy on write). Imported only there:
anywhere else it would freeze that process's heap as a side effect."""

import gc

gc.collect()
gc.freeze()
