"""PRW builder: `release` reads the release files, `identities` remaps training ids, the builder
writes the shared schema."""
