"""CUHK-SYSU builder: `release` reads the .mat files, `annotations` labels them, the builder writes
the shared schema."""
