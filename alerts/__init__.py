"""Alert records, routing to people, and delivery channels."""
