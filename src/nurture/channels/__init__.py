"""Delivery channels (email now; SMS later). Each channel is self-contained building blocks
that the campaign engine wires in as an activity executor and an event source."""
