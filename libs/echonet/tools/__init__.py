"""Command-line tools over the core: the frame/line decoder and the property-table doc generator."""
