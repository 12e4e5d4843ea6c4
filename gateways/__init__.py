"""Outbound/inbound partner gateways: payments, carriers, callback signing."""
