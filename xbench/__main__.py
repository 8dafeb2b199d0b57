from xbench.cli import main

main(prog_name="xbench")
