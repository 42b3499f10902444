"""Provider-independent machinery: semantic-convention names, settings, the call recorder,
the stream proxy, pricing and token estimates. Nothing here imports a client library."""
