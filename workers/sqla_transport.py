"""kombu's SQLAlchemy transport (the embedded broker), polling every 0.1 s instead of 1 s.

A worker whose prefetch window is full sleeps one polling interval before it looks for
the next message, so kombu's default of 1 s capped an embedded-mode worker at about one
job a second: an import of 500 chunks took minutes of sleeping. At 0.1 s an idle worker
runs about ten small SELECTs a second on the broker's SQLite file. The interval cannot
be set through broker_transport_options: this transport hands those to create_engine().
"""

from kombu.transport import sqlalchemy

POLLING_INTERVAL_SECONDS = 0.1


class Transport(sqlalchemy.Transport):
    polling_interval = POLLING_INTERVAL_SECONDS
