"""The page for people at /ui: its own HTML, JS and CSS, and the npm packages it loads."""
