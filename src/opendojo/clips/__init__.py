"""Clips: the schema, the store (video + telemetry files, Lance catalog) and importers."""

import os

# Where commands look for the clip store unless told otherwise.
DEFAULT_STORE = os.environ.get("DOJO_STORE", "data/fleet")


def store_option(help: str = "Clip store: a directory or an fsspec URL "
                             "(default $DOJO_STORE, else data/fleet)."):
    """The `--store` option every command that reads or writes a clip store takes."""
    import typer

    return typer.Option(DEFAULT_STORE, "--store", "-s", help=help, show_default=False)


def absolute_store(url: str) -> str:
    """`url` with a local path made absolute, for configs that outlive the working directory
    (a training run's config.json): URLs (s3://, gs://, memory://, file://) stay as given."""
    if not url or "://" in url:
        return url
    return os.path.abspath(url)
