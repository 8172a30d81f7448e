"""Write one API reference page per module of `lit_video` (run by mkdocs-gen-files at build time).

The pages and their navigation come from the source tree, so a module added, moved or removed shows
up in the reference without editing anything here.
"""

from pathlib import Path

import mkdocs_gen_files

PACKAGE = "lit_video"
ROOT = Path(__file__).resolve().parents[1]

nav = mkdocs_gen_files.Nav()
for source in sorted((ROOT / PACKAGE).rglob("*.py")):
    parts = source.relative_to(ROOT).with_suffix("").parts
    if parts[-1] == "__main__" or any(part.startswith("_") and part != "__init__" for part in parts):
        continue
    page = Path("reference", *parts).with_suffix(".md")
    if parts[-1] == "__init__":
        parts = parts[:-1]
        page = page.with_name("index.md")
    identifier = ".".join(parts)
    nav[parts] = page.relative_to("reference").as_posix()
    with mkdocs_gen_files.open(page, "w") as handle:
        handle.write(f"::: {identifier}\n")
    mkdocs_gen_files.set_edit_path(page, source.relative_to(ROOT))

with mkdocs_gen_files.open("reference/SUMMARY.md", "w") as handle:
    handle.writelines(nav.build_literate_nav())
