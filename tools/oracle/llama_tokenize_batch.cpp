// llama_tokenize_batch: llama.cpp's own tokenizer over many strings in one process.
//
// Usage: llama_tokenize_batch MODEL.gguf < input > output
// input:  repeated records "<byte length>\n<bytes>"; output: one line per record, the token ids
// separated by spaces, as llama_tokenize(vocab, text, add_special=true, parse_special=true) returns
// them (the defaults of llama-tokenize: BOS when the model adds it, special-token text parsed).
// Only the vocabulary is loaded (vocab_only). Build against the llama.cpp sources of the PyPI
// llama-cpp-python sdist (see gguf_tokenizer_golden.py).
#include "llama.h"

#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

int main(int argc, char ** argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s MODEL.gguf < records\n", argv[0]);
        return 2;
    }
    llama_log_set([](ggml_log_level, const char *, void *) {}, nullptr);
    llama_backend_init();
    llama_model_params mp = llama_model_default_params();
    mp.vocab_only = true;
    llama_model * model = llama_model_load_from_file(argv[1], mp);
    if (!model) {
        fprintf(stderr, "cannot load %s\n", argv[1]);
        return 1;
    }
    const llama_vocab * vocab = llama_model_get_vocab(model);
    std::string line;
    while (std::getline(std::cin, line)) {
        size_t n = std::stoul(line);
        std::string text(n, '\0');
        std::cin.read(&text[0], (std::streamsize) n);
        std::vector<llama_token> ids(n + 16);
        int32_t got = llama_tokenize(vocab, text.data(), (int32_t) n, ids.data(), (int32_t) ids.size(), true, true);
        if (got < 0) {
            ids.resize(-got);
            got = llama_tokenize(vocab, text.data(), (int32_t) n, ids.data(), (int32_t) ids.size(), true, true);
        }
        for (int32_t i = 0; i < got; i++) {
            printf(i ? " %d" : "%d", ids[i]);
        }
        printf("\n");
    }
    llama_model_free(model);
    llama_backend_free();
    return 0;
}
