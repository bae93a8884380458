"""The Agora Media Gateway API: paths, authentication, the HTTP transport."""
