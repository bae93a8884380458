"""revoker: revoke Agora Media Gateway streaming keys in every region, with an audit trail."""

__version__ = "0.1.0"
