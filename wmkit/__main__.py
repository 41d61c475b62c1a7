"""``python -m wmkit`` (what ``torchrun --nproc_per_node N -m wmkit train …`` runs)."""

from wmkit.cli import main

main()
