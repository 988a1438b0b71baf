"""Card Checkout's pure domain: money, payments, rules, ports and use cases.

Nothing here performs I/O or imports a framework; adapters do that behind the ports.
"""
