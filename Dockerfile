FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install --no-cache-dir . && useradd --system nurture
USER nurture
ENV NURTURE_DATA_DIR=/tmp/nurture
EXPOSE 8000
CMD ["nurture", "serve", "--host", "0.0.0.0", "--no-demo"]
