typedef int qs_client_placeholder;
