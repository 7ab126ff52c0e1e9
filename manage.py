#!/usr/bin/env python
import os
import sys


def main() -> None:
    # Measured on 2-core CPUs: OpenMP's default spin-waiting made LoRA steps 2.5x and decoding 4x
    # slower (../shared/measured-here.md). Must be set before torch loads OpenMP.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
