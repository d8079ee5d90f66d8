package dev.clickfan.analysis;

import java.util.List;
import java.util.Map;
import java.util.function.UnaryOperator;
import java.util.regex.Pattern;

import org.apache.lucene.analysis.TokenStream;
import org.apache.lucene.analysis.email.UAX29URLEmailTokenizer;
import org.apache.lucene.analysis.pattern.PatternCaptureGroupTokenFilter;
import org.apache.lucene.analysis.standard.StandardAnalyzer;
import org.elasticsearch.common.settings.Settings;
import org.elasticsearch.env.Environment;
import org.elasticsearch.index.IndexSettings;
import org.elasticsearch.index.analysis.TokenFilterFactory;
import org.elasticsearch.index.analysis.TokenizerFactory;
import org.elasticsearch.indices.analysis.AnalysisModule.AnalysisProvider;
import org.elasticsearch.plugins.AnalysisPlugin;
import org.elasticsearch.plugins.Plugin;

/**
 * Why this exists: the integ-test-zip (the only Elasticsearch 8.x build on Maven Central)
 * leaves out the analysis-common module, and the `.security` system index, where API keys
 * live, declares an `email` analyzer built of three of its components:
 * tokenizer uax_url_email, filters pattern_capture (custom, as `email`), lowercase (in the
 * server already) and unique. Without them the index cannot be created ("Unknown filter
 * type [pattern_capture] for [email]"), and neither can an API key.
 *
 * The three come here under analysis-common's names, with its settings and defaults, from
 * Lucene's classes in the node's lib/ (unique is Elasticsearch's own: UniqueTokenFilter).
 * Only the factories' interfaces are used, not Elasticsearch's abstract base classes,
 * whose constructors change between versions.
 */
public final class ClickfanAnalysisPlugin extends Plugin implements AnalysisPlugin {

    @Override
    public Map<String, AnalysisProvider<TokenFilterFactory>> getTokenFilters() {
        return Map.of(
            // a pattern_capture filter without patterns is an error, as in analysis-common
            "pattern_capture", AnalysisPlugin.requiresAnalysisSettings(ClickfanAnalysisPlugin::patternCapture),
            "unique", ClickfanAnalysisPlugin::unique
        );
    }

    @Override
    public Map<String, AnalysisProvider<TokenizerFactory>> getTokenizers() {
        return Map.of("uax_url_email", ClickfanAnalysisPlugin::uaxUrlEmail);
    }

    /** Settings: patterns (required, a list of Java regexes), preserve_original (default true). */
    static TokenFilterFactory patternCapture(IndexSettings index, Environment env, String name, Settings settings) {
        List<String> regexes = settings.getAsList("patterns", null);
        if (regexes == null) {
            throw new IllegalArgumentException("required setting 'patterns' is missing for token filter [" + name + "]");
        }
        Pattern[] patterns = regexes.stream().map(Pattern::compile).toArray(Pattern[]::new);
        boolean preserveOriginal = settings.getAsBoolean("preserve_original", true);
        return filter(name, in -> new PatternCaptureGroupTokenFilter(in, preserveOriginal, patterns));
    }

    /** Settings: only_on_same_position (default false). */
    static TokenFilterFactory unique(IndexSettings index, Environment env, String name, Settings settings) {
        boolean onlyOnSamePosition = settings.getAsBoolean("only_on_same_position", false);
        return filter(name, in -> new UniqueTokenFilter(in, onlyOnSamePosition));
    }

    /** Settings: max_token_length (default 255, StandardAnalyzer's). */
    static TokenizerFactory uaxUrlEmail(IndexSettings index, Environment env, String name, Settings settings) {
        int maxTokenLength = settings.getAsInt("max_token_length", StandardAnalyzer.DEFAULT_MAX_TOKEN_LENGTH);
        return TokenizerFactory.newFactory(name, () -> {
            UAX29URLEmailTokenizer tokenizer = new UAX29URLEmailTokenizer();
            tokenizer.setMaxTokenLength(maxTokenLength);
            return tokenizer;
        });
    }

    private static TokenFilterFactory filter(String name, UnaryOperator<TokenStream> create) {
        return new TokenFilterFactory() {
            @Override
            public String name() {
                return name;
            }

            @Override
            public TokenStream create(TokenStream in) {
                return create.apply(in);
            }
        };
    }
}
