module example.com/embed-ui

go 1.22
