"""One module per ``spikeforge`` subcommand, each exporting a click command named ``command``."""
