"""One router per resource; mounted once by tinymlaas.api.main."""
