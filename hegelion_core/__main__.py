from hegelion_core.cli import main

main()
