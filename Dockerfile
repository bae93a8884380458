# revoker as a container image: the wheel built from this checkout, installed into a
# slim Python, run as a non-root user with `revoker` as the entrypoint.
#   docker build -t registry.example.com/revoker:0.1.0 .
#   docker run --rm -e AGORA_CUSTOMER_ID -e AGORA_CUSTOMER_SECRET -v "$PWD:/work" -w /work \
#     --user "$(id -u):$(id -g)" registry.example.com/revoker:0.1.0 revoke leaked.csv
# Credentials come only from the environment (-e NAME, a Kubernetes Secret), never
# from build arguments or layers.
ARG PYTHON_IMAGE=python:3.12-slim

FROM ${PYTHON_IMAGE} AS wheel
WORKDIR /src
COPY pyproject.toml README.md CHANGELOG.md ./
COPY revoker ./revoker
# The wheel only: no dependencies, no build tools left for the final image.
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM ${PYTHON_IMAGE}
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
RUN useradd --create-home --uid 10001 --user-group --shell /usr/sbin/nologin revoker
COPY --from=wheel /wheels/ /tmp/wheels/
# The CLI only; the emulator extra stays out of a production image.
RUN pip install --no-cache-dir /tmp/wheels/revoker-*.whl && rm -rf /tmp/wheels
USER 10001:10001
WORKDIR /home/revoker
ENTRYPOINT ["revoker"]
CMD ["--help"]
