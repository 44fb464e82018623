"""Generated media: images and speech from OpenAI-compatible providers, and their files."""
