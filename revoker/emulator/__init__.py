"""Local Agora Media Gateway emulator (``revoker emulator``).

Modules: ``state`` (keys, streams, seed files), ``app`` (the ASGI app, ``create_app``),
``server`` (uvicorn), ``command`` (click), ``process`` (``EmulatorProcess`` for tests).
Nothing here is imported eagerly: starlette and uvicorn load only when used.
"""
