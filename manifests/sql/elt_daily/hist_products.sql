CREATE TABLE IF NOT EXISTS history.products (product_id INT64, name STRING, category STRING, unit_price FLOAT64, valid_from DATE);
DELETE FROM history.products WHERE valid_from = @run_date;
INSERT INTO history.products (product_id, name, category, unit_price, valid_from)
SELECT product_id, name, category, unit_price, load_date FROM landing.products WHERE load_date = @run_date;
