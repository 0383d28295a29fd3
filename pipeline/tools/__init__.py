"""Tools built on runs: jobs (many images), comparisons and X/Y/Z, latent-space tools, HTML reports."""
