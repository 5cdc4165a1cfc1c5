"""Task specs shipped with fairbench (installed as the package fairbench._tasks)."""
