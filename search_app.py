"""The person-search web app (`ps-search-app` once installed): see ps_tf/commands/search_app.py."""

from ps_tf.commands.search_app import cli

if __name__ == '__main__':
    cli()
