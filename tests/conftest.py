import os

os.environ.setdefault("SDL_VIDEODRIVER", "offscreen")
os.environ.setdefault("SDL_NO_SIGNAL_HANDLERS", "1")
