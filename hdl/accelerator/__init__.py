"""The programmable accelerator (``docs/accelerator.md``): one design, elaborated for a
hardware configuration, runs any compiled program loaded through its host port."""
