"""The header buttons that lead from a page of the book to its source and to a kernel: a Sphinx
extension, loaded through `sphinx.local_extensions` in book/_config.yml.

The repository's address is filled in when the book is built, never typed into _config.yml:
``DNAL_REPOSITORY_URL`` (``https://HOST/OWNER/REPO``; the book workflow sets it from its
context, ``github.server_url``/``github.repository``) and ``DNAL_REPOSITORY_BRANCH`` (the
workflow's ``github.ref_name``). A build without them (``make book`` here, the test build) keeps
the placeholder that _config.yml names, so it builds the same pages with the same buttons.

A chapter page is rendered from book/chapters/<name>.ipynb, which `make book` generates and
nothing commits: its edit button would open a file the repository does not have. So on chapter
pages the edit button opens notebooks/<name>.py (the source a contributor edits) and the Binder
button opens notebooks/<name>.ipynb (the same cells with their stored outputs) in JupyterLab.
"""
from __future__ import annotations

import os
import re

from sphinx.errors import ConfigError, ExtensionError

URL_ENV, BRANCH_ENV = "DNAL_REPOSITORY_URL", "DNAL_REPOSITORY_BRANCH"
_URL = re.compile(r"https://[A-Za-z0-9.-]+(?::\d+)?/[\w.-]+/[\w.-]+")
_BRANCH = re.compile(r"[\w.-]+(?:/[\w.-]+)*")
CHAPTERS = "chapters/"  # the pages rendered from generated notebooks (book/_toc.yml)


def repository_options(env=os.environ) -> dict:
    """The theme options that ``env`` sets: ``repository_url`` and ``repository_branch``, each
    only where its variable is set and not empty. ConfigError on a malformed value."""
    options = {}
    url = env.get(URL_ENV, "").strip().removesuffix("/").removesuffix(".git")
    if url:
        if not _URL.fullmatch(url):
            raise ConfigError(f"{URL_ENV}={url!r}: expected https://HOST/OWNER/REPOSITORY")
        options["repository_url"] = url
    branch = env.get(BRANCH_ENV, "").strip()
    if branch:
        if not _BRANCH.fullmatch(branch):
            raise ConfigError(f"{BRANCH_ENV}={branch!r}: not a branch name")
        options["repository_branch"] = branch
    return options


def fill_repository(app, config) -> None:
    config.html_theme_options.update(repository_options())


def _buttons(buttons):
    for button in buttons:
        yield button
        yield from _buttons(button.get("buttons", []))


def point_chapters_at_notebooks(app, pagename, templatename, context, doctree) -> None:
    """Edit and launch links of a chapter page: from the generated book/chapters/<name>.ipynb to
    the committed notebooks/<name>.py (edit) and notebooks/<name>.ipynb (Binder)."""
    if not pagename.startswith(CHAPTERS):
        return
    name = pagename.removeprefix(CHAPTERS)
    book = app.builder.theme_options.get("path_to_docs", "").strip("/")
    generated = f"{book}/{pagename}.ipynb".lstrip("/")
    targets = {"source-edit-button": f"notebooks/{name}.py", "Binder": f"notebooks/{name}.ipynb"}
    for button in _buttons(context.get("header_buttons", [])):
        key = button.get("label") if button.get("label") in targets else button.get("text")
        if key in targets:
            if generated not in button["url"]:
                raise ExtensionError(f"{pagename}: the {key} link {button['url']} does not name {generated}")
            button["url"] = button["url"].replace(generated, targets[key])


def setup(app):
    app.connect("config-inited", fill_repository)
    # after sphinx-book-theme has made the buttons (its handlers run at priority 501)
    app.connect("html-page-context", point_chapters_at_notebooks, priority=600)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
