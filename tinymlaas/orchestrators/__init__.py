"""Built-in orchestrator plugins (entry-point group ``tinymlaas.orchestrators``)."""
