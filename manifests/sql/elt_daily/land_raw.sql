CREATE TABLE IF NOT EXISTS landing.customers (customer_id INT64, name STRING, country STRING, load_date DATE);
CREATE TABLE IF NOT EXISTS landing.products (product_id INT64, name STRING, category STRING, unit_price FLOAT64, load_date DATE);
CREATE TABLE IF NOT EXISTS landing.orders (order_id INT64, customer_id INT64, product_id INT64, quantity INT64, order_date DATE, load_date DATE);

DELETE FROM landing.customers WHERE load_date = @run_date;
DELETE FROM landing.products WHERE load_date = @run_date;
DELETE FROM landing.orders WHERE load_date = @run_date;

INSERT INTO landing.customers (customer_id, name, country, load_date) VALUES
  (1, 'Aroha', 'NZ', @run_date),
  (2, 'Bruno', 'BR', @run_date),
  (3, 'Chiara', 'IT', @run_date),
  (4, 'Dev', 'IN', @run_date);

INSERT INTO landing.products (product_id, name, category, unit_price, load_date) VALUES
  (10, 'Flat white', 'coffee', 5.5, @run_date),
  (11, 'Espresso machine', 'equipment', 420.0, @run_date),
  (12, 'Grinder', 'equipment', 180.0, @run_date);

INSERT INTO landing.orders (order_id, customer_id, product_id, quantity, order_date, load_date) VALUES
  (100, 1, 10, 3, @run_date, @run_date),
  (101, 2, 11, 1, @run_date, @run_date),
  (102, 3, 12, 1, @run_date, @run_date),
  (103, 1, 12, 2, @run_date, @run_date),
  (104, 4, 10, 10, @run_date, @run_date);
