CREATE TABLE IF NOT EXISTS events.big_orders (event_date DATE, order_id INT64, customer_id INT64, amount FLOAT64);
DELETE FROM events.big_orders WHERE event_date = @run_date;
INSERT INTO events.big_orders (event_date, order_id, customer_id, amount)
SELECT @run_date, order_id, customer_id, amount FROM consume.order_lines WHERE amount >= @big_order_threshold;
