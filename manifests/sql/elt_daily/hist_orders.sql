CREATE TABLE IF NOT EXISTS history.orders (order_id INT64, customer_id INT64, product_id INT64, quantity INT64, order_date DATE, loaded_on DATE);
DELETE FROM history.orders WHERE loaded_on = @run_date;
INSERT INTO history.orders (order_id, customer_id, product_id, quantity, order_date, loaded_on)
SELECT order_id, customer_id, product_id, quantity, order_date, load_date FROM landing.orders WHERE load_date = @run_date;
