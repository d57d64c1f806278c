"""The demo's synthetic dataset in ADE20K layout."""
