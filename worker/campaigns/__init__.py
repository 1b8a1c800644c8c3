"""Campaign lifecycle, materialisation, status and preview: the layer under the CLI and API."""
