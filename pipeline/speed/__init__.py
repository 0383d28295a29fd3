"""Speed: DeepCache, token merging and the performance options, applied around the model call."""
