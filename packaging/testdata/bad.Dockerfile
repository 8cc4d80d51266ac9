# A Dockerfile that breaks every rule TestDockerfileChecksBite expects.
FROM debian:latest
ADD https://example.com/tool.tar.gz /opt/
COPY does-not-exist.yaml /etc/seccloud/seccloud.yaml
RUN go build -o /usr/local/bin/seccloud ./appliance/cmd/seccloud
USER root
VOLUME /data
EXPOSE 3128/tcp
HEALTHCHECK CMD curl -f http://127.0.0.1:9090/healthz || exit 1
CMD ["seccloud", "run"]
