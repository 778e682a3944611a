"""The WSGI wrapper hands Django the request alone: what granian copied into each environ from
the process environment is taken out, the request's own variables and headers stay."""

from apiops_site.wsgi import request_only


def test_process_variables_are_taken_out_and_the_request_kept():
    process = {
        "HOME": "/home/apiops",
        "OPS_API_KEY": "k" * 40,
        "HTTP_X_FORWARDED_FOR": "203.0.113.9",
        "HTTP_X_REQUEST_ID": "from-the-process",
        "SERVER_NAME": "127.0.0.1",
    }
    environ = {
        **process,
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/health/live",
        "SERVER_NAME": "127.0.0.1",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_X_REQUEST_ID": "sent-by-the-caller",  # the header wins over the variable
        "wsgi.url_scheme": "http",
    }

    assert request_only(environ, process) == {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/health/live",
        "SERVER_NAME": "127.0.0.1",  # a CGI variable of the request, whatever the process has
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_X_REQUEST_ID": "sent-by-the-caller",
        "wsgi.url_scheme": "http",
    }
