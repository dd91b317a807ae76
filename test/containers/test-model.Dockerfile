# The test model (test/fixtures/models/test-model.ts) as an inference image, for the container tests:
# faults and delays are switched on by its TEST_MODEL_* variables. Its build context is
# test/fixtures/models. Node.js 24 runs the TypeScript file directly (type stripping).
ARG NODE_IMAGE=node:24-bookworm-slim
FROM ${NODE_IMAGE}
COPY test-model.ts /opt/program/test-model.ts
ENV SAGEMAKER_BIND_TO_PORT=8080 \
    NODE_NO_WARNINGS=1
USER node
EXPOSE 8080
ENTRYPOINT ["node", "/opt/program/test-model.ts"]
CMD ["serve"]
