"""The admin API and the feedback endpoint, served by the Faust worker's web server (aiohttp)."""
