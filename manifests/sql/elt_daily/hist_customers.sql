-- History keeps every version of a customer; a re-run for the same date replaces that date's versions.
CREATE TABLE IF NOT EXISTS history.customers (customer_id INT64, name STRING, country STRING, valid_from DATE);
DELETE FROM history.customers WHERE valid_from = @run_date;
INSERT INTO history.customers (customer_id, name, country, valid_from)
SELECT customer_id, name, country, load_date FROM landing.customers WHERE load_date = @run_date;
