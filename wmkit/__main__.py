"""``python -m wmkit`` (what ``torchrun --nproc_per_node N -m wmkit train …`` runs)."""

from wmkit.cli import main

if __name__ == "__main__":  # not when multiprocessing re-imports this module in a spawned worker
    main()
