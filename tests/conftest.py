from spikeforge.verif.toolchain import setup_environment

setup_environment()
