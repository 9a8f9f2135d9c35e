"""Delivery channels: each turns an Alert into a message on one medium."""
