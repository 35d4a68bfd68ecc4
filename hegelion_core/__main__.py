import sys

from hegelion_core.cli import main
from hegelion_core.secrets import unseal_argv

main(unseal_argv(sys.argv[1:]))  # `hegelion run` hands its stages their secrets by environment
