// Types for the `sentiment` package (it ships none), covering the part this model uses.
declare module 'sentiment' {
  namespace Sentiment {
    interface AnalysisResult {
      score: number;
      comparative: number;
      calculation: Array<Record<string, number>>;
      tokens: string[];
      words: string[];
      positive: string[];
      negative: string[];
    }
    interface ScoringStrategy {
      apply(tokens: string[], cursor: number, tokenScore: number): number;
    }
    interface Language {
      labels: Record<string, number>;
      scoringStrategy?: ScoringStrategy;
    }
    interface AnalysisOptions {
      language?: string;
      extras?: Record<string, number>;
    }
  }
  class Sentiment {
    registerLanguage(languageCode: string, language: Sentiment.Language): void;
    analyze(phrase: string, options?: Sentiment.AnalysisOptions): Sentiment.AnalysisResult;
  }
  export = Sentiment;
}

declare module 'sentiment/languages/en/index.js' {
  const english: import('sentiment').Language;
  export = english;
}
