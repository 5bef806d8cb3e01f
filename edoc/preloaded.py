"""The last module the services' fork server imports (edoc.launcher.PRELOAD): importing
it freezes what the server imported before it for the garbage collector. A collection in
a service forked from the server (edoc.web.settle_the_collector) then never writes to
those objects, and the memory pages that hold them stay shared with the server and every
other service instead of being copied into each (copy on write)."""

import gc

gc.collect()
gc.freeze()
