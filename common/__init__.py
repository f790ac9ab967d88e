"""What every package may use and that depends on none of them: the lazy-import helper,
the quiet model loading, and the sentence embedder that memory (request keys) and
scoring (review similarity) share."""
