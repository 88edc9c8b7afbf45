-- pitstop demo data: a small shop with a realistic skew. A few customers place most orders
-- (power-law), countries are uneven, and the orders table lacks the indexes its queries need.
\set ON_ERROR_STOP on
SET client_min_messages = warning;
DROP SCHEMA IF EXISTS shop CASCADE;
CREATE SCHEMA shop;
SET search_path = shop;

CREATE TABLE customers (
    id         int PRIMARY KEY,
    email      text NOT NULL,
    country    text NOT NULL,
    created_at timestamptz NOT NULL
);
INSERT INTO customers
SELECT g,
       'user' || g || '@example.com',
       (ARRAY['US','US','US','US','DE','DE','FR','GB','BR','IN','JP','NL'])[1 + (random() * 11)::int],
       now() - (random() * interval '3 years')
FROM generate_series(1, 50000) g;

CREATE TABLE products (
    id       int PRIMARY KEY,
    name     text NOT NULL,
    category text NOT NULL,
    price    numeric(10, 2) NOT NULL
);
INSERT INTO products
SELECT g, 'product ' || g, 'cat' || (g % 40), round((5 + random() * 495)::numeric, 2)
FROM generate_series(1, 2000) g;

CREATE TABLE orders (
    id          bigserial PRIMARY KEY,
    customer_id int NOT NULL REFERENCES customers,
    product_id  int NOT NULL REFERENCES products,
    status      text NOT NULL,
    quantity    int NOT NULL,
    total       numeric(12, 2) NOT NULL,
    created_at  timestamptz NOT NULL
);
-- power(random(), 4) puts most orders on few customers.
INSERT INTO orders (customer_id, product_id, status, quantity, total, created_at)
SELECT 1 + (power(random(), 4) * 49999)::int,
       1 + (power(random(), 2) * 1999)::int,
       CASE WHEN random() < 0.02 THEN 'open' WHEN random() < 0.05 THEN 'cancelled' ELSE 'shipped' END,
       1 + (random() * 4)::int,
       round((10 + random() * 990)::numeric, 2),
       now() - (random() * interval '2 years')
FROM generate_series(1, 800000);

-- Written once, never analyzed: its estimates are guesses.
CREATE TABLE order_events (order_id bigint, kind text, at timestamptz);
ALTER TABLE order_events SET (autovacuum_enabled = off);
INSERT INTO order_events SELECT id, 'created', created_at FROM orders WHERE id % 4 = 0;

ANALYZE customers; ANALYZE products; ANALYZE orders;
