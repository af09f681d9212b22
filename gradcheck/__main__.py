"""``python -m gradcheck``: the command line (:mod:`gradcheck.cli`)."""

from gradcheck.cli import main

main(prog_name="gradcheck")
